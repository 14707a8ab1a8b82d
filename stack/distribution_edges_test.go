//go:build !unit

package stack_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// A distribution created on two edges keeps working when the worker's
// inventory loses one: PATCH, SUSPEND and RESUME end OPEN/SUSPEND (not
// ERROR) and reach the remaining edge; the edge, back in the inventory,
// gets the next change. The edges are the inventory's when each change is
// applied, not the distribution's creation-time list.
func TestDistributionFollowsTheInventory(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 2, NoWorker: true})
	one, err := inventory.New(env.Inventory.Edges[:1])
	if err != nil {
		t.Fatal(err)
	}
	host, portStr, _ := net.SplitHostPort(env.OriginAddr)
	port, _ := strconv.Atoi(portStr)
	cfgAt := func(path string) distribution.Config {
		return distribution.Config{Region: "GLOBAL", UseOrigin: "Y", Origins: []distribution.Origin{{Origin: host, Port: port, OriginPath: path}}}
	}
	modify := func(path string) workflows.ChangeRequest {
		c := cfgAt(path)
		return workflows.ChangeRequest{Config: &c}
	}
	const domain = "inv.follow.test"
	id := workflows.DistributionWorkflowID("k", domain)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	stop := runWorkerOn(t, env, env.Config, env.Inventory)
	_, err = env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: env.Config.TaskQueue}, workflows.DistributionWorkflow, workflows.DistributionInit{
		State: distribution.State{AppKey: "k", Domain: domain, Status: distribution.StatusOpening, Config: cfgAt("/v1"), CreateTime: time.Now().UnixMilli()},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, func() bool {
		v, err := env.Client.QueryWorkflow(ctx, id, "", workflows.QueryDistribution)
		var st distribution.State
		return err == nil && v.Get(&st) == nil && st.Status == distribution.StatusOpen
	})
	requirePath(t, env, 0, domain, "/v1")
	requirePath(t, env, 1, domain, "/v1")
	stop()

	// Edge 1 leaves the inventory.
	stop = runWorkerOn(t, env, env.Config, one)
	for _, step := range []struct {
		update string
		args   []any
		want   string
	}{
		{workflows.UpdateModify, []any{modify("/v2")}, distribution.StatusOpen},
		{workflows.UpdateSuspend, []any{workflows.ChangeRequest{}}, distribution.StatusSuspend},
		{workflows.UpdateResume, []any{workflows.ChangeRequest{}}, distribution.StatusOpen},
	} {
		if st := update(ctx, t, env, id, step.update, step.args...); st.Status != step.want {
			t.Fatalf("%s with edge 1 out of the inventory: %s (%s), want %s", step.update, st.Status, st.LastError, step.want)
		}
		requirePath(t, env, 0, domain, "/v2")
	}
	requirePath(t, env, 1, domain, "/v1")
	stop()

	// Edge 1 is back: the next change reaches it.
	stop = runWorkerOn(t, env, env.Config, env.Inventory)
	defer stop()
	if st := update(ctx, t, env, id, workflows.UpdateModify, modify("/v3")); st.Status != distribution.StatusOpen {
		t.Fatalf("modify with edge 1 back: %s (%s)", st.Status, st.LastError)
	}
	requirePath(t, env, 0, domain, "/v3")
	requirePath(t, env, 1, domain, "/v3")
}

// update runs a distribution update to completion and answers the state.
func update(ctx context.Context, t *testing.T, env *testenv.Env, id, name string, args ...any) distribution.State {
	t.Helper()
	h, err := env.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var st distribution.State
	if err := h.Get(ctx, &st); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return st
}

// requirePath fails unless edge i's site table holds domain fetching
// under origin path.
func requirePath(t *testing.T, env *testenv.Env, i int, domain, path string) {
	t.Helper()
	st, err := edge.NewClient(edge.Options{}).Table(context.Background(), env.Edges[i].Edge)
	if err != nil {
		t.Fatal(err)
	}
	var held []connector.Site
	for _, s := range st.Sites {
		if s.Name == domain {
			if len(s.Origins) == 1 && s.Origins[0].Path == path {
				return
			}
			held = append(held, s)
		}
	}
	t.Fatalf("edge %d holds %+v for %s, want origin path %s", i, held, domain, path)
}

// A draining edge is listed by GET /v1/edges, marked drain, and gets no
// distribution.
func TestDrainingEdgeListedNotTargeted(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 2, Place: func(i int, e *inventory.Edge) { e.Drain = i == 1 }})
	var listed struct {
		Edges []struct {
			ID    string `json:"id"`
			Drain bool   `json:"drain"`
		} `json:"edges"`
	}
	if err := getJSON(env.API.URL+"/v1/edges", "", &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Edges) != 2 || listed.Edges[0].Drain || !listed.Edges[1].Drain {
		t.Fatalf("GET /v1/edges = %+v, want both edges, the second marked drain", listed.Edges)
	}

	host, portStr, _ := net.SplitHostPort(env.OriginAddr)
	port, _ := strconv.Atoi(portStr)
	const domain = "drain.test"
	id := workflows.DistributionWorkflowID("k", domain)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: env.Config.TaskQueue}, workflows.DistributionWorkflow, workflows.DistributionInit{
		State: distribution.State{AppKey: "k", Domain: domain, Status: distribution.StatusOpening, CreateTime: time.Now().UnixMilli(),
			Config: distribution.Config{Region: "GLOBAL", UseOrigin: "Y", Origins: []distribution.Origin{{Origin: host, Port: port, OriginPath: "/d"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, func() bool {
		v, err := env.Client.QueryWorkflow(ctx, id, "", workflows.QueryDistribution)
		var st distribution.State
		return err == nil && v.Get(&st) == nil && st.Status == distribution.StatusOpen
	})
	requirePath(t, env, 0, domain, "/d")
	st, err := edge.NewClient(edge.Options{}).Table(ctx, env.Edges[1].Edge)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Sites {
		if s.Name == domain {
			t.Fatalf("draining edge holds %+v", s)
		}
	}
}
