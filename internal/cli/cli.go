// Package cli parses a command's flags the same way for every cdnflow
// command: -h/--help prints the usage and exits 0; an unknown flag, a bad
// value or an unexpected argument prints the error and the usage to the
// flag set's output (stderr) and exits 2.
package cli

import (
	"errors"
	"flag"
	"fmt"
)

// Exit codes of a command line that does not run the command.
const (
	ExitHelp  = 0 // -h or --help: the usage was printed
	ExitUsage = 2 // the command line does not parse: error and usage printed
)

// UsageError is a command line that does not parse; its message and the
// usage have been printed already.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Parse parses args into fs (set up with flag.ContinueOnError) and returns
// the positional arguments. Flags may come before, between or after them;
// everything after "--" is positional. More than maxArgs positional
// arguments is a usage error. The error is flag.ErrHelp after -h/--help,
// else a *UsageError; either way the usage has been printed.
func Parse(fs *flag.FlagSet, args []string, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, &UsageError{Err: err} // flag printed it and the usage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) > maxArgs {
		return nil, Usagef(fs, "unexpected argument %q", pos[maxArgs])
	}
	return pos, nil
}

// Usagef prints the message and fs's usage to fs's output and returns it
// as a *UsageError.
func Usagef(fs *flag.FlagSet, format string, a ...any) error {
	err := fmt.Errorf(format, a...)
	_, _ = fmt.Fprintln(fs.Output(), err) // best effort, as flag.FlagSet prints its own errors
	fs.Usage()
	return &UsageError{Err: err}
}

// ExitCode is the exit code of a Parse error: ExitHelp for -h/--help,
// ExitUsage for a *UsageError; ok is false for any other error.
func ExitCode(err error) (code int, ok bool) {
	var ue *UsageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitHelp, true
	case errors.As(err, &ue):
		return ExitUsage, true
	}
	return 0, false
}
