// Command printversion prints version.Get(), for TestLinkerFlags.
package main

import (
	"fmt"

	"github.com/heraldhq/herald/internal/version"
)

func main() { fmt.Println(version.Get()) }
