// Preloaded into the sanitizer tree's test runs (scripts/sanitize.sh): dlclose does nothing, so
// Open MPI's plugins (mca_*.so) stay mapped until exit and LeakSanitizer can name them in a stack
// (tests/fuzz/lsan.supp suppresses their allocations, kept until exit by design). Unloaded, they
// show as "<unknown module>", which no suppression can match. Not instrumented itself.
extern "C" int dlclose(void* /*handle*/) {
    return 0;
}
