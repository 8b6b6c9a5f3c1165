//go:build !crashpoint

package crashpoint

import "testing"

// TestUntaggedNeverStops: without the build tag an armed point does not end the process (this test
// would die with it). The stop itself is tested by the app's crash tests, which build the tag.
func TestUntaggedNeverStops(t *testing.T) {
	if err := Arm("flush.after_insert"); err != nil {
		t.Fatal(err)
	}
	Hit("flush.after_insert")
	if err := Arm("flush.after_insert@0"); err == nil {
		t.Fatal("a bad spec was accepted")
	}
}
