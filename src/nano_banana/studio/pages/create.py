"""Create page: scenario, prompt and settings in, progress and the finished image out."""

from nano_banana.studio.ui_create import render

render()
