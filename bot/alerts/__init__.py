"""Alert sources at the edge: notifications from monitors, read into `AlertNotice`s."""
