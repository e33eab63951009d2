"""Actor-critic agents whose recurrent core learns online (RTRL, KF-RTRL, UORO) or by TBPTT."""
