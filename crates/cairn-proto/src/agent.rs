//! Agent API bodies (Keylime agent REST 2.x): info, keys, quotes, notifications.
