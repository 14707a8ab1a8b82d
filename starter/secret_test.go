package starter_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/starter"
)

// A key or SecretKey from the environment never shows in a command's help
// or in the usage printed after a bad flag: CI logs keep both.
func TestSecretsFromTheEnvironmentAreNotPrinted(t *testing.T) {
	const secret, apiKey = "s3cr3t-secret-key", "s3cr3t-api-key"
	t.Setenv("CDNFLOW_SECRET_KEY", secret)
	t.Setenv("CDNFLOW_API_KEY", apiKey)
	for name, cmd := range map[string]func(context.Context, starter.IO, []string) int{
		"distribution history": func(ctx context.Context, sio starter.IO, args []string) int {
			return starter.Distribution(ctx, sio, append([]string{"history"}, args...))
		},
		"purge":    starter.Purge,
		"prewarm":  starter.Prewarm,
		"schedule": starter.Schedule,
	} {
		for _, args := range [][]string{{"-h"}, {"--no-such-flag"}} {
			var out, errOut bytes.Buffer
			cmd(context.Background(), starter.IO{In: strings.NewReader(""), Out: &out, Err: &errOut, Client: http.DefaultClient}, args)
			all := out.String() + errOut.String()
			if all == "" {
				t.Fatalf("%s %v printed nothing", name, args)
			}
			if strings.Contains(all, secret) || strings.Contains(all, apiKey) {
				t.Errorf("%s %v printed a secret from the environment:\n%s", name, args, all)
			}
		}
	}
}
