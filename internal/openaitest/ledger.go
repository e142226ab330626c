package openaitest

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
)

// Kinds of Delivery.
const (
	KindChat      = "chat"
	KindEmbedding = "embedding"
)

// Delivery is one distinct request (chat) or input (embeddings) the server delivered results
// for, and how many times: a Count above 1 means the same result was paid for again.
type Delivery struct {
	// Key identifies the request (chat: model and messages) or input (embeddings: model,
	// dimensions and text): hex of a hash of them.
	Key string `json:"key"`
	// Kind is KindChat or KindEmbedding.
	Kind string `json:"kind"`
	// Subject is SubjectHash of what the result is about: for chat, the subject paragraph of
	// the last user message (the last one that is not a title line, where a prompt puts the
	// abstract); for embeddings, the input.
	// Several distinct chat requests (a first prompt and a stricter retry) share a Subject.
	Subject string `json:"subject"`
	// Count is how many results were delivered for the request or input.
	Count int64 `json:"count"`
}

// SubjectHash is the Subject of a Delivery about text: the first 16 hex digits of its
// SHA-256.
func SubjectHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:8])
}

// delivery is the ledger entry of one distinct request or input.
type delivery struct {
	kind, subject string
	count         int64
}

// chatKey identifies a chat request by its model and messages: the same key delivered twice is
// the same completion paid twice.
func chatKey(req chatRequest) string {
	var b strings.Builder
	b.WriteString("chat\x00")
	b.WriteString(req.Model)
	for _, m := range req.Messages {
		b.WriteString("\x00")
		b.WriteString(m.Role)
		b.WriteString("\x00")
		b.WriteString(m.text())
	}
	sum := sha256.Sum256([]byte(b.String()))
	return string(sum[:])
}

// chatSubject is the text a chat request is about: the subject paragraph of its last user
// message (see subjectParagraph).
func chatSubject(req chatRequest) string {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			return subjectParagraph(req.Messages[i].text())
		}
	}
	return ""
}

// embedKey identifies one embedding input by model, dimensions and input.
func embedKey(req embedRequest, in embedInput) string {
	dims := ""
	if req.Dimensions != nil {
		dims = strconv.Itoa(*req.Dimensions)
	}
	sum := sha256.Sum256([]byte("embedding\x00" + req.Model + "\x00" + dims + "\x00" + in.key))
	return string(sum[:])
}

// recordDelivery adds one delivered result to the ledger and the distinct counters. The lock
// must be held.
func (s *Server) recordDeliveryLocked(key, kind, subject string) {
	if s.delivered == nil {
		s.delivered = map[string]*delivery{}
	}
	d, ok := s.delivered[key]
	if !ok {
		d = &delivery{kind: kind, subject: SubjectHash(subject)}
		s.delivered[key] = d
		if kind == KindChat {
			s.stats.ChatDistinctDelivered++
		} else {
			s.stats.EmbedInputsDistinctDelivered++
		}
	}
	d.count++
}

// Deliveries returns the ledger of delivered results: one Delivery per distinct chat request
// and per distinct embedding input, ordered by kind, subject and key.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	out := make([]Delivery, 0, len(s.delivered))
	for key, d := range s.delivered {
		out = append(out, Delivery{Key: hex.EncodeToString([]byte(key)[:8]), Kind: d.kind, Subject: d.subject, Count: d.count})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Subject != b.Subject {
			return a.Subject < b.Subject
		}
		return a.Key < b.Key
	})
	return out
}
