// Package run is the goroutines one part of the daemon owns: started
// under its context, stopped and waited for by its Close.
package run

import (
	"context"
	"sync"
)

// Group runs goroutines that end with the group. The zero Group is not
// ready: use New.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New returns a running group.
func New() *Group {
	g := &Group{}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g
}

// Go runs f(ctx) in a goroutine that Close cancels and waits for. After
// Close has begun it runs nothing and reports false.
func (g *Group) Go(f func(ctx context.Context)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f(g.ctx)
	}()
	return true
}

// Context ends when Close begins.
func (g *Group) Context() context.Context { return g.ctx }

// Close cancels every goroutine's context and waits for them to return.
// It is safe to call twice.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}
