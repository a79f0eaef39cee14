package rtc

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// slowChannel connects a sender's raw channel to a receiver serving
// into sink, with a short progress window, and returns the channel and
// the receiver's answers.
func slowChannel(t *testing.T, sink Sink) (*webrtc.DataChannel, chan message) {
	t.Helper()
	old := progressWindow
	progressWindow = 300 * time.Millisecond
	t.Cleanup(func() { progressWindow = old })
	ea, eb, a, b := endpoints(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	sa, offer, err := ea.Offer(ctx, b.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close() })
	sb, answer, err := eb.Answer(ctx, offer, a.Fingerprint, func(dc *webrtc.DataChannel) {
		Serve(dc, a.Fingerprint, sink, slog.New(slog.DiscardHandler))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	if err := sa.Finish(answer); err != nil {
		t.Fatal(err)
	}
	dc, err := sa.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answers := make(chan message, 16)
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var msg message
		if json.Unmarshal(m.Data, &msg) == nil {
			answers <- msg
		}
	})
	return dc, answers
}

func next(t *testing.T, answers chan message) message {
	t.Helper()
	select {
	case m := <-answers:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no answer from the receiver")
		return message{}
	}
}

// TestSlowFileEnded: a sender that trickles a file, or sends every byte
// but never the end, has it ended by the receiver after a window (the
// partial file aborted, its reservation freed); the channel still
// serves.
func TestSlowFileEnded(t *testing.T) {
	for name, trickle := range map[string]func(dc *webrtc.DataChannel){
		"trickle": func(dc *webrtc.DataChannel) {
			for range 5 {
				dc.Send([]byte{1})
				time.Sleep(100 * time.Millisecond)
			}
		},
		"no end": func(dc *webrtc.DataChannel) { dc.Send(make([]byte, 100)) },
	} {
		t.Run(name, func(t *testing.T) {
			sink := &fuzzSink{t: t}
			dc, answers := slowChannel(t, sink)
			dc.SendText(`{"t":"file","name":"slow","size":100}`)
			if m := next(t, answers); m.T != "ready" {
				t.Fatalf("answer %+v", m)
			}
			go trickle(dc)
			m := next(t, answers)
			if m.T != "ack" || m.OK || !strings.Contains(m.Error, "too slow") {
				t.Fatalf("answer %+v, want a refusal for slowness", m)
			}
			if n := sink.openFiles(); n != 0 {
				t.Fatalf("%d files still open", n)
			}
			dc.SendText(`{"t":"ping"}`)
			if m := next(t, answers); m.T != "pong" {
				t.Fatalf("answer %+v, want pong", m)
			}
		})
	}
}
