package eventually

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestWaitReturnsOnceTrue(t *testing.T) {
	calls := 0
	err := Wait(time.Minute, time.Millisecond, func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Wait = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestWaitTimesOutWithLastError(t *testing.T) {
	calls := 0
	last := errors.New("")
	err := Wait(30*time.Millisecond, 5*time.Millisecond, func() error {
		calls++
		last = fmt.Errorf("state %d", calls)
		return last
	})
	if !errors.Is(err, last) || !strings.Contains(err.Error(), "30ms") || calls < 2 {
		t.Fatalf("Wait = %v after %d calls, want the last error (%v) after the limit", err, calls, last)
	}
}

// fakeTB records a Fatalf and ends the goroutine like testing does.
type fakeTB struct{ msg string }

func (*fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestWithinFailsTheTest(t *testing.T) {
	var f fakeTB
	WithinEvery(&f, 10*time.Millisecond, time.Millisecond, func() error { return errors.New("edge still HIT") })
	if !strings.Contains(f.msg, "edge still HIT") {
		t.Fatalf("Fatalf message %q, want the check's error", f.msg)
	}
	f = fakeTB{}
	Within(&f, time.Second, func() error { return nil })
	if f.msg != "" {
		t.Fatalf("a true condition failed the test: %s", f.msg)
	}
}
