//go:build !unit

package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/codec"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/freeport"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// A prewarm with an origin token in its header and a distribution whose
// callback URL carries a token: neither appears in any workflow history,
// memo or search attribute read through a client without the key, nor
// anywhere in Temporal's SQLite file, nor in the payload store's objects;
// the API still answers with the job's real status, and the codec endpoint
// shows the payloads with the key only.
func TestSecretsSealedInTemporalAndPayloadStore(t *testing.T) {
	const headerToken, callbackToken, pathMarker = "origin-token-b41d9e", "cb-token-6e02fa", "asset-7c1f3d"
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.TemporalUIPort = 0 // the Web UI, to read a job as it shows it
	}})
	secrets := []string{headerToken, callbackToken, pathMarker}

	// The prewarm: one URL, the token in a request header for the origin.
	id := startPrewarm(t, env, map[string]any{
		"url_list":  []string{"http://" + domain + "/" + pathMarker + ".js"},
		"cf_domain": domain, "target_type": "region", "region": []string{"us"},
		"header": map[string]string{"Authorization": "Bearer " + headerToken},
	}, nil)
	if st := waitPrewarm(t, env, id); st.Status != "COMPLETED" || st.Total != 1 || st.Completed != 1 {
		t.Fatalf("prewarm status through the API: %+v", st)
	}
	// The distribution: its callback goes to a closed port, so the
	// activity's failure message (the URL with its token) is recorded too.
	closed, err := freeport.Get("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	d := createWithCallback(t, env, fmt.Sprintf("http://127.0.0.1:%d/cb?token=%s&status={status}", closed, callbackToken))
	waitStatus(t, env, d, "OPEN")
	// The callback's failure is on the server, naming the target without
	// the URL's query (the SDK logs activity errors in plain text).
	eventually.Within(t, 60*time.Second, func() error {
		desc, err := env.Client.DescribeWorkflowExecution(context.Background(), workflows.DistributionWorkflowID(appKey, d), "")
		if err != nil {
			return err
		}
		for _, pa := range desc.PendingActivities {
			msg := pa.GetLastFailure().GetMessage()
			if pa.GetActivityType().GetName() != "DistributionCallback" || !strings.Contains(msg, "/cb") {
				continue
			}
			if strings.Contains(msg, callbackToken) {
				t.Fatalf("the callback's failure carries its token: %s", msg)
			}
			return nil
		}
		return fmt.Errorf("no failed callback attempt yet: %v", desc.PendingActivities)
	})

	assertWebUIShowsSealed(t, env, workflows.PrewarmWorkflowID(id), secrets)
	sealed := assertRawHistoriesSealed(t, env, workflows.PrewarmWorkflowID(id), secrets)
	assertFilesHoldNoSecret(t, env.Server.DBFile, secrets, true)
	assertFilesHoldNoSecret(t, filepath.Join(env.Config.DataDir, "payloads"), secrets, false)
	assertCodecEndpoint(t, env, sealed, headerToken)
}

func createWithCallback(t *testing.T, env *testenv.Env, cbURL string) string {
	t.Helper()
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if h := nhn(t, env, "POST", "/distributions", secret, map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins":  []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": "/"}},
		"callback": map[string]any{"httpMethod": "POST", "url": cbURL},
	}}}, &created); !h.IsSuccessful {
		t.Fatalf("create: %+v", h)
	}
	return created.Distributions[0].Domain
}

// assertRawHistoriesSealed reads every workflow's history and memo through
// a client that has no codec and fails on a secret in them; it returns the
// prewarm job's sealed input payload.
func assertRawHistoriesSealed(t *testing.T, env *testenv.Env, prewarmID string, secrets []string) *commonpb.Payload {
	t.Helper()
	raw, err := client.Dial(client.Options{HostPort: env.Config.TemporalAddress, Namespace: env.Config.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	list, err := raw.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: env.Config.Namespace, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var input *commonpb.Payload
	kinds := map[string]bool{}
	for _, ex := range list.Executions {
		kinds[ex.Type.GetName()] = true
		isPrewarm := ex.Execution.WorkflowId == prewarmID
		desc, err := raw.DescribeWorkflowExecution(ctx, ex.Execution.WorkflowId, ex.Execution.RunId)
		if err != nil {
			t.Fatal(err)
		}
		for k, p := range desc.GetWorkflowExecutionInfo().GetMemo().GetFields() {
			if !codec.IsSealed(p) {
				t.Errorf("%s: memo %s stored unsealed", ex.Execution.WorkflowId, k)
			}
		}
		assertNoSecret(t, ex.Execution.WorkflowId+" description", desc, secrets)
		it := raw.GetWorkflowHistory(ctx, ex.Execution.WorkflowId, ex.Execution.RunId, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			assertNoSecret(t, fmt.Sprintf("%s event %d", ex.Execution.WorkflowId, ev.EventId), ev, secrets)
			if started := ev.GetWorkflowExecutionStartedEventAttributes(); started != nil && isPrewarm {
				input = started.GetInput().GetPayloads()[0]
			}
		}
	}
	if !kinds["DistributionWorkflow"] || input == nil || !codec.IsSealed(input) {
		t.Fatalf("workflows read: %v; prewarm input %v", kinds, input)
	}
	return input
}

// assertNoSecret looks for the secrets in m's wire form, where bytes (a
// payload's data) are as they are, not base64 as in JSON.
func assertNoSecret(t *testing.T, what string, m proto.Message, secrets []string) {
	t.Helper()
	text, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if bytes.Contains(text, []byte(s)) {
			t.Errorf("%s holds %q in plain text", what, s)
		}
	}
}

// assertFilesHoldNoSecret reads a file (and, for SQLite, its -wal) or every
// file under a directory and fails on a secret's bytes in them.
func assertFilesHoldNoSecret(t *testing.T, path string, secrets []string, sqlite bool) {
	t.Helper()
	var files []string
	if sqlite {
		files = []string{path, path + "-wal"}
	} else if err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	read := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		read += len(data)
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds %q in plain text", f, s)
			}
		}
	}
	if read == 0 {
		t.Fatalf("nothing read under %s", path)
	}
}

// assertCodecEndpoint: the codec endpoint (cdnflow codec-server's handler)
// decodes a sealed payload with the deployment's key, fails with another
// key, and refuses a browser origin that is not the UI's.
func assertCodecEndpoint(t *testing.T, env *testenv.Env, sealed *commonpb.Payload, want string) {
	t.Helper()
	ring, err := codec.LoadRing(env.Config.PayloadKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := codec.NewKeyLine("k1")
	other, err := codec.ParseRing([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{sealed}})
	const ui = "http://127.0.0.1:8233"
	decode := func(r *codec.Ring, origin string) (int, string) {
		srv := httptest.NewServer(codec.Handler(r, []string{ui}))
		defer srv.Close()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	// The payload's data is base64 in the JSON answer: decode it to look.
	code, out := decode(ring, ui)
	var got commonpb.Payloads
	if code != http.StatusOK || protojson.Unmarshal([]byte(out), &got) != nil || len(got.Payloads) != 1 ||
		!strings.Contains(string(got.Payloads[0].Data), want) {
		t.Errorf("decode with the key: %d %.300s", code, out)
	}
	if code, out := decode(other, ui); code == http.StatusOK || strings.Contains(out, want) {
		t.Errorf("decode with another key: %d %.300s", code, out)
	}
	if code, out := decode(ring, "http://evil.example"); code != http.StatusForbidden || strings.Contains(out, want) {
		t.Errorf("decode from another origin: %d %.300s", code, out)
	}
}

// assertWebUIShowsSealed reads the prewarm job's history as the Web UI's
// browser app does (the UI server's /api/v1 route) and fails on a secret
// in it, or on a payload that is not sealed.
func assertWebUIShowsSealed(t *testing.T, env *testenv.Env, workflowID string, secrets []string) {
	t.Helper()
	resp, err := http.Get("http://" + env.Server.UIAddr + "/api/v1/namespaces/" + env.Config.Namespace + "/workflows/" + workflowID + "/history")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var h workflowservice.GetWorkflowExecutionHistoryResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &h); err != nil || resp.StatusCode != http.StatusOK || len(h.GetHistory().GetEvents()) == 0 {
		t.Fatalf("web ui history: %d %v %.300s", resp.StatusCode, err, data)
	}
	assertNoSecret(t, "web ui history of "+workflowID, &h, secrets)
	input := h.GetHistory().GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(input) == 0 || !codec.IsSealed(input[0]) {
		t.Errorf("web ui shows the job's input unsealed: %v", input)
	}
}
