package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
)

// TestIngestRidesOutTheKillOfTheStreamLeader: on a JetStream cluster of three nats-server
// processes, the PAPERS stream's leader is killed with -9 while `paperpipe ingest` publishes
// 12,000 abstracts. The survivors elect a new leader within seconds; ingest waits for it,
// sends again what the dead leader left unanswered, and succeeds, with every abstract in the
// stream once. (It stopped, exit 1, a few thousand records in: "no response from stream", and
// the message lost with the leader failed after 30 s, "timeout waiting for ack".)
func TestIngestRidesOutTheKillOfTheStreamLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("a leader election and a lost acknowledgement take tens of seconds")
	}
	const n = 12000
	dir := keepOnFailure(t)
	servers, err := StartNATSCluster(bin.NATS, dir)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, s := range servers {
		t.Cleanup(s.Stop)
		urls = append(urls, s.URL())
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// The cluster elects its meta leader after its servers have started: an ingest started
	// before then fails at once ("JetStream did not answer in time", as it should), which on a
	// loaded machine took longer than ingest's wait. Start it once JetStream answers.
	if err := waitForJetStream(js, time.Minute); err != nil {
		t.Fatal(err)
	}

	papers := Corpus(sampledata.Papers(t), n, 11)
	input := filepath.Join(dir, "abstracts.jsonl")
	f, err := os.Create(input)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteJSONL(f, papers); err != nil {
		t.Fatal(err)
	}
	f.Close()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "PAPERPIPE_DATA=" + filepath.Join(dir, "data"),
		"DATABASE_URL=" + pgtest.URL(t), "NATS_URL=" + strings.Join(urls, ","), "PAPERPIPE_NATS_REPLICAS=3",
	}
	logPath := filepath.Join(dir, "ingest.log")
	ingest, err := startProc("ingest", logPath, env, nil, bin.Paperpipe, "ingest", input)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ingest.Stop(5 * time.Second) })

	// Wait until ingest is well into its publishing, then kill the stream's leader.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var leader string
	for {
		if ingest.Exited() {
			t.Fatalf("ingest ended before the kill: %s", ingest.Tail(10))
		}
		// Each request on its own short deadline: the cluster may not have a leader to answer yet.
		reqCtx, reqCancel := context.WithTimeout(ctx, time.Second)
		s, err := js.Stream(reqCtx, pipeline.StreamPapers)
		reqCancel()
		if err == nil {
			if info := s.CachedInfo(); info.State.Msgs >= 1500 && info.Cluster != nil && info.Cluster.Leader != "" {
				leader = info.Cluster.Leader
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the stream never held 1,500 messages with a leader: %s", ingest.Tail(10))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var killed *NATS
	for i, s := range servers {
		if leader == fmt.Sprintf("n%d", i+1) {
			killed = s
		}
	}
	if killed == nil {
		t.Fatalf("leader %q is none of the servers", leader)
	}
	if err := killed.Kill(); err != nil {
		t.Fatal(err)
	}
	if ingest.Exited() {
		t.Fatalf("ingest ended as the leader was killed; the test proves nothing: %s", ingest.Tail(10))
	}
	code, err := ingest.Wait(3 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("with leader %s killed, ingest ended with exit %d:\n%s", leader, code, ingest.Tail(10))
	}
	t.Logf("leader %s killed; ingest: %s", leader, ingest.Tail(1))

	// Every abstract is in the stream, once.
	s, err := js.Stream(ctx, pipeline.StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != n {
		t.Errorf("the stream holds %d messages; want %d", got, n)
	}
	seen := make(map[string]int, n)
	for seq := s.CachedInfo().State.FirstSeq; seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var a paper.Abstract
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Fatal(err)
		}
		seen[a.ID]++
	}
	for _, a := range papers {
		if seen[a.ID] != 1 {
			t.Errorf("%s is in the stream %d times; want once", a.ID, seen[a.ID])
		}
	}
}

// waitForJetStream waits until the cluster's JetStream answers (it has a meta leader), each
// request on a short deadline of its own, for at most limit.
func waitForJetStream(js jetstream.JetStream, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("JetStream of the cluster still not answering after %v: %w", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
