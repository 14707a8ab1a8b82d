package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cdnflow/cdnflow/workflows"
)

// maxDumpLines bounds the log lines one slow change prints; the rest are
// counted by message.
const maxDumpLines = 300

// perEdge are messages logged once per edge a change reaches: counted,
// not printed.
var perEdge = map[string]bool{"site applied": true}

// fileLogger is an info-level JSON logger to path (the stack's logs, read
// back by dumpSlow).
func fileLogger(path string) (*zap.Logger, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("worker log: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(f), zap.InfoLevel)
	return zap.New(core), nil
}

// dumpSlow prints what happened during a change of domain from start to
// end: its distribution workflow's history events in that window and the
// edge sync's (offsets from start; the gaps tell which step waited), and
// the log lines of the window that name the domain, its workflow or the
// edge sync.
func (b *bench) dumpSlow(domain string, start, end time.Time) {
	log.Printf("slow change of %s (%s): history and logs from the PATCH (+0s)", domain, end.Sub(start).Round(time.Millisecond))
	b.dumpLive()
	wid := workflows.DistributionWorkflowID(appKey, domain)
	b.dumpHistory(wid, start, start, end)
	b.dumpHistory(workflows.EdgeSyncWorkflowID, start, start.Add(-15*time.Second), end)
	if b.logPath == "" {
		return
	}
	b.dumpLogs([]string{domain, wid, workflows.EdgeSyncWorkflowID}, start, start.Add(-15*time.Second), end)
}

// dumpHistory prints workflow id's history events between from and to,
// as offsets from start.
func (b *bench) dumpHistory(id string, start, from, to time.Time) {
	it := b.stack.Temporal.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	log.Printf("  history of %s:", id)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			log.Printf("  history of %s: %v", id, err)
			return
		}
		t := ev.GetEventTime().AsTime()
		if t.Before(from) || t.After(to.Add(time.Second)) {
			continue
		}
		log.Printf("    %+8.3fs #%d %s %s", t.Sub(start).Seconds(), ev.GetEventId(), strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_"), eventDetail(ev))
	}
}

// eventDetail is what an event is about: an activity's type, a timer's
// length, a marker's name, a failure's message.
func eventDetail(ev *historypb.HistoryEvent) string {
	switch {
	case ev.GetActivityTaskScheduledEventAttributes() != nil:
		return ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
	case ev.GetActivityTaskStartedEventAttributes() != nil:
		a := ev.GetActivityTaskStartedEventAttributes()
		return fmt.Sprintf("attempt %d %s", a.GetAttempt(), a.GetLastFailure().GetMessage())
	case ev.GetActivityTaskFailedEventAttributes() != nil:
		return ev.GetActivityTaskFailedEventAttributes().GetFailure().GetMessage()
	case ev.GetActivityTaskTimedOutEventAttributes() != nil:
		return ev.GetActivityTaskTimedOutEventAttributes().GetFailure().GetMessage()
	case ev.GetTimerStartedEventAttributes() != nil:
		return ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration().String()
	case ev.GetMarkerRecordedEventAttributes() != nil:
		m := ev.GetMarkerRecordedEventAttributes()
		return m.GetMarkerName() + " " + m.GetFailure().GetMessage()
	case ev.GetWorkflowTaskFailedEventAttributes() != nil:
		a := ev.GetWorkflowTaskFailedEventAttributes()
		return a.GetCause().String() + " " + a.GetFailure().GetMessage()
	case ev.GetWorkflowTaskTimedOutEventAttributes() != nil:
		return ev.GetWorkflowTaskTimedOutEventAttributes().GetTimeoutType().String()
	case ev.GetWorkflowExecutionUpdateAcceptedEventAttributes() != nil:
		return ev.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput().GetName()
	case ev.GetWorkflowExecutionSignaledEventAttributes() != nil:
		return ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()
	}
	return ""
}

// dumpLogs prints the log lines between from and to that contain any of
// keys, as offsets from start (at most maxDumpLines; the rest counted by
// message).
func (b *bench) dumpLogs(keys []string, start, from, to time.Time) {
	f, err := os.Open(b.logPath)
	if err != nil {
		log.Printf("  worker log: %v", err)
		return
	}
	defer func() { _ = f.Close() }() // read only
	log.Printf("  worker log lines naming %s:", strings.Join(keys, ", "))
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	printed, rest := 0, map[string]int{}
	for sc.Scan() {
		line := sc.Text()
		var head struct {
			TS  string `json:"ts"`
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &head) != nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, head.TS)
		if err != nil || t.Before(from) || t.After(to.Add(time.Second)) || !containsAny(line, keys) {
			continue
		}
		if printed >= maxDumpLines || perEdge[head.Msg] {
			rest[head.Msg]++
			continue
		}
		printed++
		if len(line) > 600 {
			line = line[:600] + "…"
		}
		log.Printf("    %+8.3fs %s", t.Sub(start).Seconds(), line)
	}
	msgs := make([]string, 0, len(rest))
	for m := range rest {
		msgs = append(msgs, m)
	}
	sort.Strings(msgs)
	for _, m := range msgs {
		log.Printf("    (+%d more %q)", rest[m], m)
	}
}

func containsAny(s string, keys []string) bool {
	for _, k := range keys {
		if strings.Contains(s, k) {
			return true
		}
	}
	return false
}

// dumpLive prints when the last change was OPEN and when its edges went
// live: the count at each second and the last edges.
func (b *bench) dumpLive() {
	ids := make([]string, 0, len(b.live))
	for id := range b.live {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return b.live[ids[i]] < b.live[ids[j]] })
	log.Printf("  OPEN at +%s; %d edges live:", b.open.Round(time.Millisecond), len(ids))
	for i, sec := 0, time.Second; i < len(ids); sec += time.Second {
		for i < len(ids) && b.live[ids[i]] < sec {
			i++
		}
		log.Printf("    by +%s: %d", sec, i)
	}
	for _, id := range ids[max(0, len(ids)-5):] {
		log.Printf("    last: %s at +%s", id, b.live[id].Round(time.Millisecond))
	}
}
