package main

import (
	"fmt"
	"io"
)

// The command's own usage, diagnostics and status lines go to a terminal
// or a pipe; a failed write there has nowhere better to be reported, so
// these drop the write error on purpose.

func say(w io.Writer, a ...any) { _, _ = fmt.Fprint(w, a...) }

func sayf(w io.Writer, format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }

func sayln(w io.Writer, a ...any) { _, _ = fmt.Fprintln(w, a...) }
