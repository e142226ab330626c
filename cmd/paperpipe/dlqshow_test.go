package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/pipeline"
)

// A dead letter's reason is a header any client of the NATS account may write, up to
// JetStream's limit of a message's headers (64 KiB): `dlq list` (and status, the status page
// and GET /api/status, which read the same lists) showed a forged one of 60 KB whole, on one
// line. The lists cut it at pipeline.MaxShownReason bytes, saying so and where the whole is;
// `dlq show SEQ` prints it whole, and the letter keeps it.
func TestAHugeDeadLetterReasonIsCutInListsAndShownWholeByDLQShow(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if err := pipeline.Setup(t.Context(), js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	reason := "the API said: " + strings.Repeat("é", 30_000) + " END"
	m := nats.NewMsg(pipeline.SubjectDead + "." + pipeline.ConsumerNew)
	m.Data = []byte(`{"id":"id:x","title":"T","abstract":"An abstract."}`)
	m.Header.Set(pipeline.HeaderSubject, pipeline.SubjectNew)
	m.Header.Set(pipeline.HeaderPaperID, "id:x")
	m.Header.Set(pipeline.HeaderReason, reason)
	ack, err := js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	seq := strconv.FormatUint(ack.Sequence, 10)

	latest, err := pipeline.LatestDeadLetters(t.Context(), js, 10) // the status page's and /api/status's
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 1 || len(latest[0].Reason) > pipeline.MaxShownReason+200 || latest[0].ReasonBytes != len(reason) {
		t.Errorf("LatestDeadLetters gave a reason of %d bytes (reason_bytes %d); want at most about %d, and the whole's %d bytes named",
			len(latest[0].Reason), latest[0].ReasonBytes, pipeline.MaxShownReason, len(reason))
	}

	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	out := c.ok("dlq", "list").stdout
	if len(out) > 2*pipeline.MaxShownReason || !strings.Contains(out, "paperpipe dlq show "+seq+" prints it whole") {
		t.Errorf("dlq list printed %d bytes; want the reason cut, and where the whole is:\n%.2000s", len(out), out)
	}
	var listed []pipeline.DeadLetter
	if err := json.Unmarshal([]byte(c.ok("dlq", "list", "--json").stdout), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ReasonBytes != len(reason) || !strings.HasPrefix(listed[0].Reason, "the API said: é") {
		t.Errorf("dlq list --json: %.300v; want the reason's start and reason_bytes %d", listed, len(reason))
	}
	if out := c.ok("dlq", "show", seq).stdout; !strings.Contains(out, "reason    "+reason+"\n") {
		t.Errorf("dlq show %s printed %d bytes without the reason whole", seq, len(out))
	}
	var shown []pipeline.DeadLetter
	if err := json.Unmarshal([]byte(c.ok("dlq", "show", "--json", seq).stdout), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown) != 1 || shown[0].Reason != reason || shown[0].ReasonBytes != 0 {
		t.Errorf("dlq show --json %s: %d letters, want the one with its reason whole", seq, len(shown))
	}
	if r := c.run("dlq", "show", "99"); r.code != 1 || !strings.Contains(r.stderr, "dead letter 99") {
		t.Errorf("dlq show 99: exit %d, stderr %q; want 1 naming the letter not found", r.code, r.stderr)
	}
}

// A dead letter's paper id is a header too, up to 64 KiB, which the lists (`dlq list`, status,
// the status page, GET /api/status) gave whole on every line, where the reason was cut. It is
// cut at pipeline.MaxShownPaperID bytes, saying so; `dlq show` gives it whole.
func TestAHugeDeadLetterPaperIDIsCutInListsAndShownWholeByDLQShow(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if err := pipeline.Setup(t.Context(), js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	id := "id:" + strings.Repeat("x", 60_000)
	m := nats.NewMsg(pipeline.SubjectDead + "." + pipeline.ConsumerNew)
	m.Data = []byte(`{"id":"id:x","title":"T","abstract":"An abstract."}`)
	m.Header.Set(pipeline.HeaderSubject, pipeline.SubjectNew)
	m.Header.Set(pipeline.HeaderPaperID, id)
	m.Header.Set(pipeline.HeaderReason, "forged")
	ack, err := js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := pipeline.LatestDeadLetters(t.Context(), js, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 1 || len(latest[0].PaperID) > pipeline.MaxShownPaperID+200 || latest[0].PaperIDBytes != len(id) ||
		!strings.Contains(latest[0].PaperID, "paperpipe dlq show "+strconv.FormatUint(ack.Sequence, 10)+" prints it whole") {
		t.Errorf("LatestDeadLetters gave a paper id of %d bytes (paper_id_bytes %d); want at most about %d, cut, and the whole's %d bytes named",
			len(latest[0].PaperID), latest[0].PaperIDBytes, pipeline.MaxShownPaperID, len(id))
	}
	whole, err := pipeline.GetDeadLetter(t.Context(), js, ack.Sequence)
	if err != nil || whole.PaperID != id {
		t.Errorf("GetDeadLetter: %d bytes of paper id, %v; want it whole", len(whole.PaperID), err)
	}
}
