INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
error: http://127.0.0.1:18085/s.mjpg: OpenCV cannot open the stream; check that the server is running and the URL, port and credentials are right (try it with 'ffplay URL' or a browser for MJPEG)
hint: set EDGECOUNT_DEBUG=1 to see the traceback
