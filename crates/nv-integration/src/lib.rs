//! System tests of NextVision live in `tests/`: real GStreamer media through the engine.
//! They are kept out of nv-media and nv-runtime so that neither layer depends on the
//! other, not even for tests (see ARCHITECTURE.md, "Crates and dependency direction").
