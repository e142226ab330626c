package summarize

import "testing"

// Unversioned reads back what Versioned writes, whatever the base.
func TestUnversionedReadsBackVersioned(t *testing.T) {
	for _, base := range []string{PromptVersion, OfflinePromptVersion, "my-wording"} {
		for _, words := range []int{DefaultMaxWords, 15, 60} {
			v := Versioned(base, words)
			if b, n := Unversioned(v); b != base || n != words {
				t.Errorf("Unversioned(%q) = %q, %d; want %q, %d", v, b, n, base, words)
			}
		}
	}
	if b, n := Unversioned("tldr-v1-wide"); b != "tldr-v1-wide" || n != DefaultMaxWords {
		t.Errorf(`Unversioned("tldr-v1-wide") = %q, %d; want it whole, with the default limit`, b, n)
	}
}
