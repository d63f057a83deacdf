//! Native module of the Credence Python SDK. Not written yet: the PyO3 bindings, the typed
//! Python front and its pytest suite come with the SDK work, after the embedded platform.
