"""The vocabulary every room shares: errors a user can cause, the events long steps yield, where
files live, translations, the quality checks' common types, and the protocol with child processes.
It imports no other room."""
