package openaitest

import (
	"net/http"
	"strings"
	"testing"
)

func TestDeliveryLedgerCountsResultsPaidAgain(t *testing.T) {
	s := Start(t, Config{Dimensions: 8})
	post := func(path, body string) {
		t.Helper()
		resp, err := http.Post(s.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	first := `{"model":"m","messages":[{"role":"system","content":"rules"},{"role":"user","content":"TL;DR:\n\nAn abstract. More."}]}`
	stricter := `{"model":"m","messages":[{"role":"system","content":"stricter rules"},{"role":"user","content":"Again:\n\nAn abstract. More."}]}`
	post("/chat/completions", first)
	post("/chat/completions", stricter) // same abstract, another request: not a repeat
	post("/chat/completions", first)    // the same request answered again: paid twice
	post("/embeddings", `{"model":"e","input":["a","b"]}`)
	post("/embeddings", `{"model":"e","input":["b","c"]}`)          // b again
	post("/embeddings", `{"model":"e","input":"b","dimensions":4}`) // other dimensions: another result

	st := s.Stats()
	if st.ChatDelivered != 3 || st.ChatDistinctDelivered != 2 {
		t.Errorf("chat delivered %d, distinct %d; want 3 and 2", st.ChatDelivered, st.ChatDistinctDelivered)
	}
	if st.EmbedInputsDelivered != 5 || st.EmbedInputsDistinctDelivered != 4 {
		t.Errorf("embedding inputs delivered %d, distinct %d; want 5 and 4", st.EmbedInputsDelivered, st.EmbedInputsDistinctDelivered)
	}
	counts := map[string]int64{}
	for _, d := range s.Deliveries() {
		counts[d.Kind+":"+d.Subject] += d.Count
		if d.Kind == KindChat && d.Subject != SubjectHash("An abstract. More.") {
			t.Errorf("chat delivery subject %s, want the hash of the abstract paragraph", d.Subject)
		}
	}
	if got := counts[KindChat+":"+SubjectHash("An abstract. More.")]; got != 3 {
		t.Errorf("chat results about the abstract = %d, want 3", got)
	}
	if got := counts[KindEmbedding+":"+SubjectHash("b")]; got != 3 {
		t.Errorf("embedding results for b = %d, want 3", got)
	}
}

func TestFailedDeliveriesAreNotInTheLedger(t *testing.T) {
	s := Start(t, Config{Dimensions: 8, Faults: Faults{Truncated: 1}})
	resp, err := http.Post(s.URL()+"/embeddings", "application/json", strings.NewReader(`{"model":"e","input":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := s.Stats(); st.EmbedInputsDelivered != 0 || st.EmbedInputsDistinctDelivered != 0 || len(s.Deliveries()) != 0 {
		t.Errorf("a truncated answer was counted as delivered: %+v, %v", st, s.Deliveries())
	}
}
