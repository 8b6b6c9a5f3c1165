// Command shopdesk is the one binary of Shopdesk: serve, migrate, shop, bench, version.
package main

import (
	"os"

	"github.com/shopdesk/shopdesk/app"
	_ "github.com/shopdesk/shopdesk/app/loadtest" // registers `shopdesk bench`
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}
