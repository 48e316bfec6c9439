// Package fuzz holds the fuzz targets for every decoder that reads bytes
// from the network. CI runs each target briefly; seed corpora live under
// testdata/fuzz.
package fuzz
