// Command twtop makes TCP TIME_WAIT visible: who closes first, how long
// TIME_WAIT sockets live and how they end, whether tcp_tw_reuse reuses them,
// and how close a host is to running out of ephemeral ports.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "twtop: %v\nRun 'twtop --help' for usage.\n", err)
			os.Exit(2)
		}
		var br *badRecording
		if errors.As(err, &br) {
			fmt.Fprintf(os.Stderr, "twtop: %v\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "twtop: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
