package vcl

import (
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// One originPath limit, stated by the renderer's check.
func TestOriginPathLimitIsOneConstant(t *testing.T) {
	ok := "/" + strings.Repeat("a", MaxOriginPathLen-1)
	if err := CheckOriginPath(ok); err != nil {
		t.Fatalf("%d characters refused: %v", len(ok), err)
	}
	if _, err := Render(Config{EdgeID: "E1", ConnectorPort: 16083, ControlToken: connector.ControlToken([]byte("s")), Sites: []Site{{Name: "s", Hosts: []string{"a.example"}, Origins: []Backend{{Host: "127.0.0.1", Port: 80}}, OriginPath: ok}}}); err != nil {
		t.Fatalf("render with the longest originPath: %v", err)
	}
	long := ok + "b"
	err := CheckOriginPath(long)
	if err == nil || !strings.Contains(err.Error(), "at most 1024") {
		t.Fatalf("%d characters: %v, want a length error", len(long), err)
	}
}
