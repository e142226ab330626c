package pipeline

import "testing"

// A withdrawal's claim is told from a letter by its subject alone: papers.dead.<consumer>.withdrawn
// is a claim, whatever the consumer is called — one named "withdrawn" too, whose letters
// (papers.dead.withdrawn) must still be listed and counted as letters.
func TestAClaimsSubjectIsToldFromALettersWhateverTheConsumersName(t *testing.T) {
	for subject, want := range map[string]bool{
		claimSubject(SubjectDead + "." + ConsumerNew): true,
		claimSubject(SubjectDead + ".withdrawn"):      true,
		SubjectDead + "." + ConsumerNew:               false,
		SubjectDead + ".withdrawn":                    false,
		SubjectDead + ".a.b.withdrawn":                false,
	} {
		if got := isClaim(subject); got != want {
			t.Errorf("isClaim(%q) = %v, want %v", subject, got, want)
		}
	}
}
