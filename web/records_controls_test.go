package web

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// The built-in record parser treats control characters as ingest does: spaces in the text
// (an ESC or BEL in a posted abstract would reach the terminal of whoever runs `paperpipe
// show` on it), and an id holding one, or a format character, is refused.
func TestParseRecordMakesControlCharactersSpacesAndRefusesThemInIDs(t *testing.T) {
	t.Parallel()
	a, err := ParseRecord([]byte(`{"title": "Routing \u001b]0;PWNED\u0007 experts", "abstract": "Text\u001b[2J\fmore.",` +
		` "authors": ["Mallory \u001b[8mhidden"], "categories": ["cs.LG\u0085"]}`))
	if err != nil || a.Title != "Routing ]0;PWNED experts" || a.Abstract != "Text [2J more." ||
		!slices.Equal(a.Authors, []string{"Mallory [8mhidden"}) || !slices.Equal(a.Categories, []string{"cs.LG"}) {
		t.Errorf("ParseRecord = %+v, %v; want the control characters as spaces", a, err)
	}
	for _, id := range []string{`id:a\nb`, `x\u001b]0;PWNED\u0007`, `2401.01234\u202e`} {
		_, err := ParseRecord([]byte(`{"id": "` + id + `", "title": "T", "abstract": "A"}`))
		if err == nil || !errors.Is(err, paper.ErrInvalid) || !strings.Contains(err.Error(), "a control or format character") {
			t.Errorf("ParseRecord with id %s: %v; want it refused for a control or format character", id, err)
		}
	}
	if _, err := ParseRecord([]byte(`{"title": "T", "abstract": "A\u0000B"}`)); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("ParseRecord with a NUL: %v; want it refused", err)
	}
}
