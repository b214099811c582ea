"""One module per tab: its layout, its handlers and its event wiring."""
