package service

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cdnflow/cdnflow/workflows"
)

// A purge this API started is in its purge list at once and,
// once finished, answers from its result with no Temporal read.
const (
	// startedKeep is how long a started purge is added to list scans that
	// do not show it; visibility shows it well before.
	startedKeep = time.Minute
	// awaitPurgeFor bounds the wait for one purge's result (most finish in
	// their first workflow task, within milliseconds); a purge that takes
	// longer is read from Temporal as before.
	awaitPurgeFor = 10 * time.Second
	// maxAwaits bounds the purges awaited at once (one long poll each).
	maxAwaits = 512
	// awaitAnswer bounds how long a read of an awaited purge waits for its
	// result before it asks Temporal.
	awaitAnswer = 50 * time.Millisecond
)

// startedPurges remembers, per appKey and domain (listKey), the purges
// this process started in the last startedKeep. Safe for concurrent use.
type startedPurges struct {
	mu    sync.Mutex
	byKey map[string][]startedEntry
}

type startedEntry struct {
	f  foundPurge
	at time.Time
}

// startedPurge is the list entry of a purge just started: what visibility
// will list once it indexed the start (running, progress 0).
func startedPurge(pr workflows.PurgeSeq, distributionSeq int64, wfID string) foundPurge {
	return foundPurge{wfID: wfID, running: true, item: PurgeItem{
		Seq: pr.Seq, DistributionSeq: distributionSeq, PurgeID: pr.PurgeID, PurgeTime: pr.PurgeTime,
		Type: pr.Type, Path: strings.Join(pr.Paths, "\n"),
	}}
}

func (p *startedPurges) add(key string, f foundPurge) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byKey == nil {
		p.byKey = map[string][]startedEntry{}
	}
	now := time.Now()
	for k, list := range p.byKey {
		if k != key && now.Sub(list[len(list)-1].at) > startedKeep {
			delete(p.byKey, k)
		}
	}
	p.byKey[key] = append(p.prune(p.byKey[key], now), startedEntry{f: f, at: now})
}

// prune drops the entries older than startedKeep (list is oldest first).
func (p *startedPurges) prune(list []startedEntry, now time.Time) []startedEntry {
	i := 0
	for i < len(list) && now.Sub(list[i].at) > startedKeep {
		i++
	}
	return list[i:]
}

// merge answers all (a scan, newest first; not modified) with the purges
// started here under key, created within [start, end], that it lacks.
func (p *startedPurges) merge(key string, all []foundPurge, start, end *time.Time) []foundPurge {
	p.mu.Lock()
	list := p.prune(p.byKey[key], time.Now())
	if len(list) == 0 {
		delete(p.byKey, key)
	} else {
		p.byKey[key] = list
	}
	var add []foundPurge
	if len(list) > 0 {
		have := make(map[int64]bool, len(all))
		for _, f := range all {
			have[f.item.Seq] = true
		}
		for _, e := range list {
			created := time.UnixMilli(e.f.item.PurgeTime)
			if have[e.f.item.Seq] || start != nil && created.Before(*start) || end != nil && created.After(*end) {
				continue
			}
			add = append(add, e.f)
		}
	}
	p.mu.Unlock()
	if len(add) == 0 {
		return all
	}
	out := append(append(make([]foundPurge, 0, len(all)+len(add)), all...), add...)
	sort.Slice(out, func(i, j int) bool { return out[i].item.Seq > out[j].item.Seq })
	return out
}

// awaitPurge waits (up to awaitPurgeFor, at most maxAwaits at once) for
// the result of a purge this process started and keeps it as the purge's
// answer (finishedTTL): a poller sees progress 100 as soon as the workflow
// completed, with no Temporal read. With eager start the first workflow
// task runs in this process, and most purges complete in it.
func (s *Service) awaitPurge(wfID string, run client.WorkflowRun) {
	select {
	case s.reads.awaits <- struct{}{}:
	default:
		return
	}
	done := make(chan struct{})
	s.reads.awaiting.Store(wfID, done)
	go func() {
		defer func() { <-s.reads.awaits }()
		defer s.reads.awaiting.Delete(wfID)
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), awaitPurgeFor)
		defer cancel()
		var st workflows.PurgeStatus
		if err := run.Get(ctx, &st); err == nil {
			s.reads.purges.put(wfID, st, finishedTTL)
		}
	}()
}

// awaitedResult lets a read of a purge this process awaits (awaitPurge)
// wait until until (at most awaitAnswer from the read's start, shared by
// every purge of one list read) for its result instead of asking
// Temporal: a query would wait for the same workflow task anyway. It
// reports whether the result came in (it is then in the purges cache).
func (s *Service) awaitedResult(ctx context.Context, wfID string, until time.Time) bool {
	v, ok := s.reads.awaiting.Load(wfID)
	if !ok {
		return false
	}
	wait := time.Until(until)
	if wait <= 0 {
		select {
		case <-v.(chan struct{}):
			return true
		default:
			return false
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-v.(chan struct{}):
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}
