package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/twtop/twtop/metrics"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
)

// metricsFeed is the --metrics endpoint and the reading it serves: the
// pipeline stores each snapshot it publishes, with the tracer's counters
// at that moment, and a scrape loads the latest without waiting.
type metricsFeed struct {
	cur    atomic.Pointer[metrics.Reading]
	srv    *metrics.Server
	tier   string
	kernel string
}

// startMetrics serves --metrics (nil when it was not given). It binds
// before tracing starts, so a busy port fails fast.
func startMetrics(cfg *config) (*metricsFeed, error) {
	if cfg.metrics == "" {
		return nil, nil
	}
	f := &metricsFeed{}
	c := metrics.NewCollector(f.cur.Load, metrics.Options{TopN: cfg.metricsTop, Version: versionString()})
	h, err := metrics.NewHandler(c, func() bool { return f.cur.Load() != nil })
	if err != nil {
		return nil, err
	}
	if f.srv, err = metrics.Listen(cfg.metrics, h); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "twtop: metrics on %s\n", f.srv.URL())
	return f, nil
}

// source names what the readings come from.
func (f *metricsFeed) source(tier, kernel string) {
	if f != nil {
		f.tier, f.kernel = tier, kernel
	}
}

// publish makes s, with the tracer's counters ts, what scrapes see.
func (f *metricsFeed) publish(s *model.Snapshot, ts record.TracerStats) {
	if f == nil {
		return
	}
	f.cur.Store(&metrics.Reading{Snapshot: s, Kernel: f.kernel,
		Meta: model.Meta{Tier: f.tier, Lost: ts.Lost, RecursionMisses: ts.RecursionMisses}})
}

// close stops the endpoint, letting scrapes under way finish.
func (f *metricsFeed) close() {
	if f == nil {
		return
	}
	if err := f.srv.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "twtop: %v\n", err)
	}
}

// notifyStop returns a channel that receives Ctrl-C and SIGTERM, and the
// function that stops listening.
func notifyStop() (<-chan os.Signal, func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	return sigs, func() { signal.Stop(sigs) }
}
