package store

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// FuzzDecodeCursor: a cursor is client input (the API's cursor, the UI's after). Any string
// DecodeCursor accepts encodes back to a cursor that decodes to the same position, with an id
// PostgreSQL's text holds; anything else is refused with paper.ErrInvalid, never a panic. And
// every position the store can write (created_at from 1970 to the year 9999, any id of valid
// UTF-8 without NUL) survives Encode and DecodeCursor whole.
func FuzzDecodeCursor(f *testing.F) {
	now := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
	f.Add((&Cursor{createdAt: now, id: "arxiv:2401.00001"}).Encode(), now.UnixMicro(), "arxiv:2401.00001")
	f.Add((&Cursor{createdAt: now, id: "title:ab|cd"}).Encode(), int64(0), "title:ab|cd")
	f.Add("not a cursor!", int64(maxCursorMicros), "doi:10.1000/x")
	f.Add("MTIzfA", int64(-1), "")
	f.Fuzz(func(t *testing.T, s string, us int64, id string) {
		c, err := DecodeCursor(s)
		if err != nil {
			if !errors.Is(err, paper.ErrInvalid) {
				t.Errorf("DecodeCursor(%q): %v, want an error wrapping paper.ErrInvalid", s, err)
			}
		} else {
			again, err := DecodeCursor(c.Encode())
			if err != nil || !again.createdAt.Equal(c.createdAt) || again.id != c.id {
				t.Errorf("DecodeCursor(%q) = %v %q, encoded again and decoded: %v, %v", s, c.createdAt, c.id, again, err)
			}
		}
		if us < 0 || us > maxCursorMicros || id == "" || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
			return
		}
		at := time.UnixMicro(us).In(time.FixedZone("x", 3600)) // as pgx may give it: not UTC
		got, err := DecodeCursor((&Cursor{createdAt: at, id: id}).Encode())
		if err != nil || !got.createdAt.Equal(at) || got.id != id {
			t.Errorf("cursor %v %q: decoded as %v, %v", at, id, got, err)
		}
	})
}
