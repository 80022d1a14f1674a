//! `[[analytics]]`: applications defined in the config file (being written).
