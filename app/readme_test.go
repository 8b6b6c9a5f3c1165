package app_test

import (
	"os"
	"strings"
	"testing"

	"github.com/shopdesk/shopdesk/app"
)

// TestReadmeConfigTable keeps the README's configuration reference equal to the settings.
func TestReadmeConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := app.ConfigReference()
	if !strings.Contains(string(readme), want) {
		t.Fatalf("README.md's configuration table is out of date; it must contain:\n%s", want)
	}
}
