package replay

import "errors"

func newEventsStrategy() Strategy { return nil }

var errNoEvents = errors.New("replay: strategy meshnode-events is not available yet")
