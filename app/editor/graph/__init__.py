"""The visual pipeline editor: layout (plain Python), items, scene, view, minimap and the pane.

Import from the modules: ``app.editor.graph.pane.GraphPane``, ``.scene.PipelineScene``,
``.view.PipelineView``, ``.layout.layout_pipeline``.
"""
