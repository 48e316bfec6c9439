package kvevents_test

import (
	"fmt"

	"github.com/meshnode/meshnode/kvevents"
)

func ExampleDecodeBatch() {
	// A vLLM batch in the array form: one BlockStored of two blocks of
	// size 2 on the GPU, then a removal of the first block.
	payload := []byte("\x92\xcb\x41\xd9\x50\x9f\x1d\x00\x00\x00\x92" +
		"\x98\xabBlockStored\x92\x0a\x0b\xc0\x94\x01\x02\x03\x04\x02\xc0\xa3GPU\xc0" +
		"\x93\xacBlockRemoved\x91\x0a\xa3GPU")
	var b kvevents.Batch
	if err := kvevents.DecodeBatch(&b, payload, kvevents.DefaultLimits()); err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range b.Events {
		fmt.Println(e.Kind, e.BlockHashes, e.TokenIDs, e.BlockSize, e.Medium)
	}
	// Output:
	// BlockStored [10 11] [1 2 3 4] 2 GPU
	// BlockRemoved [10] [] 0 GPU
}
