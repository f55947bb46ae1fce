//! The one pulldown-cmark pipeline.
