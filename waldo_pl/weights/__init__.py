"""The bundled model: the network trained by this project's recipe, in half precision, and its record."""
