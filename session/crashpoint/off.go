//go:build !crashpoint

package crashpoint

// Enabled says whether this binary stops at crash points: only with the build tag crashpoint.
const Enabled = false

// Arm only checks spec without the build tag crashpoint: a production binary never stops at a point,
// whatever SHOPDESK_CRASHPOINT says.
func Arm(spec string) error {
	_, err := parse(spec)
	return err
}

// Hit does nothing without the build tag crashpoint.
func Hit(string) {}
