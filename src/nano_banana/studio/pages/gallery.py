"""Gallery page: every saved image, searchable, with its settings, downloads and reuse."""

from nano_banana.studio.ui_gallery import render

render()
