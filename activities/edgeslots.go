package activities

import "sync"

// edgeSlots bounds the requests in flight to each edge from this worker:
// one buffered channel per edge, a request (or a long-lived sender) holds
// one place while it runs. Safe for concurrent use; the zero value is
// ready.
type edgeSlots struct {
	mu     sync.Mutex
	byEdge map[string]chan struct{}
}

// of returns edge id's slots, made with room for perEdge (or def when
// perEdge < 1) on first use.
func (s *edgeSlots) of(id string, perEdge, def int) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byEdge == nil {
		s.byEdge = map[string]chan struct{}{}
	}
	ch, ok := s.byEdge[id]
	if !ok {
		if perEdge < 1 {
			perEdge = def
		}
		ch = make(chan struct{}, perEdge)
		s.byEdge[id] = ch
	}
	return ch
}
