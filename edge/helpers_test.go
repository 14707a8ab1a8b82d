package edge_test

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/inventory"
)

// fakeEdge is an inventory edge at addr (a test server standing in for
// varnishd) with a CLI secret file of its own, so control requests have a
// token to send.
func fakeEdge(t testing.TB, id, addr string) inventory.Edge {
	t.Helper()
	secret := filepath.Join(t.TempDir(), id+".secret")
	if err := os.WriteFile(secret, []byte("secret of "+id+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return inventory.Edge{ID: id, Address: addr, SecretFile: secret}
}

func asStatus(err error, target **edge.StatusError) bool { return errors.As(err, target) }

func asCLIError(err error, target **varnishadm.Error) bool { return errors.As(err, target) }

// rawServer reads HTTP/1.1 requests in order on every connection and
// writes what answer returns for each (conn counts connections from 1, k
// requests on one from 0); ok false closes the connection instead. It
// keeps the requests it read. For pipelining tests, where an edge's
// answers must come in order on one connection.
type rawServer struct {
	ln              net.Listener
	conns, answered atomic.Int32
	mu              sync.Mutex
	open            []net.Conn
	reqs            []*http.Request
	wg              sync.WaitGroup
}

func startRawServer(t *testing.T, answer func(conn int32, k int, r *http.Request) (reply string, ok bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	t.Cleanup(func() {
		// Closing ends the accept loop and the connections the client
		// keeps idle; their Close errors have nothing to tell a test.
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.open {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			n := s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, conn)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() { _ = conn.Close() }() // may be closed by the cleanup already
				br := bufio.NewReader(conn)
				for k := 0; ; k++ {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					s.mu.Lock()
					s.reqs = append(s.reqs, r)
					s.mu.Unlock()
					reply, ok := answer(n, k, r)
					if !ok {
						return
					}
					if _, err := conn.Write([]byte(reply)); err != nil {
						return
					}
					s.answered.Add(1)
				}
			}()
		}
	}()
	return s
}
