package tracing

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Batcher bounds. A full queue drops spans rather than wait.
const (
	DefaultQueueSize     = 2048
	DefaultBatchSize     = 512
	DefaultBatchTimeout  = 200 * time.Millisecond
	DefaultExportTimeout = time.Second
)

// Counters are the export counters, shared by every provider the Tracer
// builds.
type Counters struct {
	Exported atomic.Uint64
	Dropped  atomic.Uint64
}

// Batcher is a bounded, non-blocking batch span processor: OnEnd never
// waits (a full queue drops and counts), one goroutine exports batches of
// up to DefaultBatchSize every DefaultBatchTimeout with a deadline.
type Batcher struct {
	exp   sdktrace.SpanExporter
	c     *Counters
	queue chan sdktrace.ReadOnlySpan
	flush chan chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

var _ sdktrace.SpanProcessor = (*Batcher)(nil)

// NewBatcher starts the export goroutine; Shutdown stops it.
func NewBatcher(exp sdktrace.SpanExporter, c *Counters, queueSize int) *Batcher {
	b := &Batcher{
		exp: exp, c: c,
		queue: make(chan sdktrace.ReadOnlySpan, queueSize),
		flush: make(chan chan struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go b.run()
	return b
}

// OnStart implements sdktrace.SpanProcessor.
func (b *Batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd implements sdktrace.SpanProcessor: enqueue or drop, never block.
func (b *Batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case b.queue <- s:
	default:
		b.c.Dropped.Add(1)
	}
}

func (b *Batcher) run() {
	defer close(b.done)
	t := time.NewTicker(DefaultBatchTimeout)
	defer t.Stop()
	batch := make([]sdktrace.ReadOnlySpan, 0, DefaultBatchSize)
	export := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultExportTimeout)
		if err := b.exp.ExportSpans(ctx, batch); err != nil {
			b.c.Dropped.Add(uint64(len(batch)))
		} else {
			b.c.Exported.Add(uint64(len(batch)))
		}
		cancel()
		clear(batch)
		batch = batch[:0]
	}
	drain := func() {
		for {
			select {
			case s := <-b.queue:
				batch = append(batch, s)
				if len(batch) == DefaultBatchSize {
					export()
				}
			default:
				export()
				return
			}
		}
	}
	for {
		select {
		case s := <-b.queue:
			batch = append(batch, s)
			if len(batch) == DefaultBatchSize {
				export()
			}
		case <-t.C:
			export()
		case ch := <-b.flush:
			drain()
			close(ch)
		case <-b.stop:
			drain()
			return
		}
	}
}

// ForceFlush implements sdktrace.SpanProcessor: exports what is queued.
func (b *Batcher) ForceFlush(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case b.flush <- ch:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown implements sdktrace.SpanProcessor: exports what is queued (each
// batch bounded by DefaultExportTimeout), stops the goroutine and the
// exporter. Spans still queued when ctx ends are counted as dropped.
func (b *Batcher) Shutdown(ctx context.Context) error {
	b.once.Do(func() { close(b.stop) })
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.exp.Shutdown(ctx)
}
