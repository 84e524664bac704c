"""cosim: the application layer of cnn-cosim (command line, demo, report).

It sits on top of the libraries: quant/ (training, PTQ, package format), golden/
(layout, image, integer model) and tb/ (testbench). Nothing below imports it.
"""
