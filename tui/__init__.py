"""slmops' user interfaces: the Textual wizard and the command line."""
