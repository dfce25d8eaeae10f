"""Fast against iterative, measured: photo reports (`photo`), video reports (`video`), the
metrics (`metrics`), the HTML/Markdown reports (`report`) and the parameter grids (`explore`)."""
