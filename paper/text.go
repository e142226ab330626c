package paper

import "unicode"

// IsControl reports whether r is a C0 or C1 control character or DEL: tab, newline, escape
// (which starts a terminal's escape sequences), bell and the others.
func IsControl(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f
}

// IsHidden reports whether r is a control character (IsControl) or a Unicode format character
// (category Cf: the bidi overrides, zero-width characters): one an id may not hold, as it
// cannot be seen or typed, a terminal acts on some, and a NATS header holding one (an id is
// the message id) is another id's ("id:a\nb" and "id:a b").
func IsHidden(r rune) bool {
	return IsControl(r) || unicode.Is(unicode.Cf, r)
}
