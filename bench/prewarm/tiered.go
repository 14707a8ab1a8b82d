package main

import (
	"context"
	"fmt"
	"log"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/config"
)

// tieredBench measures tiered fill: a stack of n edges without tiers, then
// a stack of n edges under one shield (harness.Options.Shield), each with
// rounds prewarm jobs of urls fresh URLs to the n edges through the API.
// Pairs are URL × chosen edge (the shield's own pairs are not counted);
// origin fetches per URL are counted at the origin.
//
//	go run ./bench/prewarm -tiered -urls 2000 -edges 10 -rounds 3
//
// Beside the rates it prints the CPU each side used per URL: this process
// (worker, API, embedded Temporal, the edges' connectors and the origin)
// and the varnishd processes, load-independent figures on a shared box.
// profile, when set, gets a CPU profile of this process per side
// (profile.untiered, profile.tiered).
func tieredBench(ctx context.Context, urls, edges, conns, pipeline, rounds int, domain, profile string) {
	fmt.Printf("tiered prewarm benchmark: %d URLs x %d edges = %d pairs per job, %d round(s) each\n", urls, edges, urls*edges, rounds)
	var rate [2]float64
	for mode, shield := range []bool{false, true} {
		stack, err := harness.Start(ctx, harness.Options{Edges: edges, Shield: shield, Configure: func(c *config.Config) {
			c.PrewarmConcurrency = conns
			c.PrewarmPipeline = pipeline
		}})
		if err != nil {
			log.Fatal(err)
		}
		var ids []string
		for _, id := range stack.Inventory.IDs() {
			if !shield || !stack.Inventory.IsShield(id) {
				ids = append(ids, id)
			}
		}
		var total, cpu, vcpu time.Duration
		var fetches int64
		stop := harness.StartCPUProfile(pick(profile != "", profile+"."+tierName(shield)))
		for r := 1; r <= rounds; r++ {
			list := urlList(domain, fmt.Sprintf("t%v-r%d", shield, r), urls)
			before := stack.Origin.Requests()
			cpu0, vcpu0 := harness.ProcessCPU(), harness.ChildrenCPU()
			dur, st, _ := runJobTo(stack.APIURL, domain, list, "pop", ids)
			cpu, vcpu = cpu+harness.ProcessCPU()-cpu0, vcpu+harness.ChildrenCPU()-vcpu0
			n := stack.Origin.Requests() - before
			fetches += n
			total += dur
			fmt.Printf("  %-8s round %d: %6.0f pairs/s, %.2f origin fetches/URL (%s; %s)\n", tierName(shield), r,
				float64(urls*edges)/dur.Seconds(), float64(n)/float64(urls), dur.Round(time.Millisecond), st)
		}
		stop()
		rate[mode] = float64(urls*edges*rounds) / total.Seconds()
		fmt.Printf("  %-8s total: %6.0f pairs/s, %.2f origin fetches/URL over %d round(s)\n", tierName(shield), rate[mode],
			float64(fetches)/float64(urls*rounds), rounds)
		fmt.Printf("  %-8s CPU per URL: %.2f ms this process (worker, Temporal, API, connectors, origin) + %.2f ms varnishd = %.2f ms\n",
			tierName(shield), perURL(cpu, urls*rounds), perURL(vcpu, urls*rounds), perURL(cpu+vcpu, urls*rounds))
		varnishCounters(stack, tierName(shield))
		stack.Stop()
	}
	fmt.Printf("  throughput tiered / untiered: %.2f\n", rate[1]/rate[0])
}

func perURL(d time.Duration, urls int) float64 {
	return float64(d.Microseconds()) / 1000 / float64(urls)
}

func tierName(shield bool) string {
	if shield {
		return "tiered"
	}
	return "untiered"
}

// varnishCounters prints, for the other edges and for the shield of
// stack, their client requests beside the client connections (sessions)
// that carried them (varnishstat MAIN.client_req, MAIN.sess_conn), hits
// and misses: the shield's sessions are what its children's connectors
// opened (connector.DefaultParentConnections each).
func varnishCounters(stack *harness.Stack, side string) {
	children, _ := filepath.Glob(filepath.Join(stack.Dir, "edges", "*-C1"))
	shields, _ := filepath.Glob(filepath.Join(stack.Dir, "edges", "shield", "*-C1"))
	for _, group := range []struct {
		name string
		dirs []string
	}{{"edges", children}, {"shield", shields}} {
		sum := map[string]int64{}
		for _, d := range group.dirs {
			out, err := exec.Command("varnishstat", "-n", d, "-1", "-f", "MAIN.sess_conn", "-f", "MAIN.client_req",
				"-f", "MAIN.cache_hit", "-f", "MAIN.cache_miss").Output()
			if err != nil {
				log.Printf("varnishstat %s: %v", d, err)
				continue
			}
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) >= 2 {
					n, _ := strconv.ParseInt(f[1], 10, 64)
					sum[strings.TrimPrefix(f[0], "MAIN.")] += n
				}
			}
		}
		if len(group.dirs) > 0 {
			fmt.Printf("  %-8s varnishd %s (%d): %d client requests on %d sessions, %d hits, %d misses\n",
				side, group.name, len(group.dirs), sum["client_req"], sum["sess_conn"], sum["cache_hit"], sum["cache_miss"])
		}
	}
}
