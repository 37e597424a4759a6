package main

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// pty is a pseudo-terminal for running twtop's UI headless: the UI draws
// on the terminal side, the harness reads and discards what it draws.
type pty struct {
	master, term *os.File
	drawn        chan int64 // bytes drawn, once the terminal is closed
}

// openPTY opens a pseudo-terminal of cols x rows and starts draining it.
func openPTY(cols, rows uint16) (*pty, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, fmt.Errorf("unlock pseudo-terminal: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("pseudo-terminal number: %w", err)
	}
	t, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	if err := unix.IoctlSetWinsize(int(t.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		m.Close()
		t.Close()
		return nil, fmt.Errorf("size pseudo-terminal: %w", err)
	}
	p := &pty{master: m, term: t, drawn: make(chan int64, 1)}
	go func() {
		n, _ := io.Copy(io.Discard, m) // ends with EIO once every terminal side is closed
		p.drawn <- n
	}()
	return p, nil
}

// Close closes both sides and returns how many bytes were drawn.
func (p *pty) Close() int64 {
	p.term.Close()
	n := <-p.drawn
	p.master.Close()
	return n
}
