// Package pipeline is the walk of every event, live and on replay alike:
// raw records from a source (the tracer's ring buffer, LiveSource, or a
// recording's record.Reader) are decoded and run through the lifecycle
// Tracker (lifecycle.Stream), folded into the model, and published as the
// one snapshot that the UI, --report, --metrics and --record's counters
// read (Board).
//
// Concurrency: a walk (Each, Feed, View.Run) and its source and model
// belong to one goroutine, the pipeline's. The Board is the only state
// shared with readers: the pipeline stores a fresh Published value, never
// modifying one it stored, and readers Load it from any goroutine without
// waiting. A View's Status, SetPaused and SetSpeed are safe from any
// goroutine (the UI's), concurrently with Run.
package pipeline
