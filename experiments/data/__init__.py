"""Data: the built-in datasets found offline and verified (`builtin`), data of the user's (`files`, `tables`,
`folders`), read and split for training (`loading`), image batches streamed from disk (`batches`)."""
