vcl 4.1;
# Boot configuration of a compose edge until the first distribution is
# applied: cdnflow's reconciler replaces it over the admin port.
backend default none;
sub vcl_recv {
    return (synth(404, "No distribution yet"));
}
