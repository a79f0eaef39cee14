package run

import (
	"context"
	"testing"

	"go.uber.org/goleak"
)

func TestGroup(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := New()
	started := make(chan struct{})
	if !g.Go(func(ctx context.Context) { close(started); <-ctx.Done() }) {
		t.Fatal("Go refused before Close")
	}
	<-started
	g.Close()
	g.Close()
	if g.Go(func(context.Context) { t.Error("ran after Close") }) {
		t.Fatal("Go accepted after Close")
	}
	if g.Context().Err() == nil {
		t.Fatal("context alive after Close")
	}
}
