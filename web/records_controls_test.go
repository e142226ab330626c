package web

import (
	"errors"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// The built-in record parser treats control characters as ingest does: kept in the text (the
// paper's id and content hash are of its text as stored; whatever shows it makes it safe), and
// an id holding one, or a format character, is refused.
func TestParseRecordKeepsControlCharactersAndRefusesThemInIDs(t *testing.T) {
	t.Parallel()
	a, err := ParseRecord([]byte(`{"title": "Routing \u001b]0;PWNED\u0007 experts", "abstract": "Text\u001b[2J\fmore."}`))
	if err != nil || a.Title != "Routing \x1b]0;PWNED\x07 experts" || a.Abstract != "Text\x1b[2J more." {
		t.Errorf("ParseRecord = %+v, %v; want the control characters kept (a form feed is white space)", a, err)
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

// Text is stored composed (NFC), as ingest stores it: a record posted with its accents
// decomposed is the same paper text as one posted composed.
func TestParseRecordComposesAccents(t *testing.T) {
	t.Parallel()
	a, err := ParseRecord([]byte(`{"title": "Nai\u0308ve Bayes", "abstract": "A re\u0301sume\u0301.", "authors": ["Bjo\u0308rk"]}`))
	if err != nil || a.Title != "Na\u00efve Bayes" || a.Abstract != "A r\u00e9sum\u00e9." || len(a.Authors) != 1 || a.Authors[0] != "Bj\u00f6rk" {
		t.Errorf("ParseRecord = %+q, %v; want the accents composed", a, err)
	}
}
